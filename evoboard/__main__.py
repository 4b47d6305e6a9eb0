from evoboard.suite.cli import main

raise SystemExit(main())
