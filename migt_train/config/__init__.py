"""Config: the typed schemas and cross-group rules (schema.py), `_target_` groups checked against what
they instantiate (checks.py), the ${migt.*} resolvers (resolvers.py), composing conf/ (compose.py) and
overrides of a recorded config (overrides.py).

Import the submodules directly: `import migt_train` registers the resolvers and must stay light
(schema.py imports the data and training packages).
"""
