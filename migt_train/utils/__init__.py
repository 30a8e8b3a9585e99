"""Infrastructure every package uses: atomic file writes (io.py), terminal vs redirected output (console.py)."""
