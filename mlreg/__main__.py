from mlreg.cli import entry

entry()
