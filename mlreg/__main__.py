from mlreg.cli import main

raise SystemExit(main())
