"""Command-line entry points, each a thin argparse main over library functions: evaluate, predict,
export, summarize, bench. Registered as console scripts (migt-evaluate, ...) and runnable as
`python -m migt_train.<name>`. No library module imports from here."""
