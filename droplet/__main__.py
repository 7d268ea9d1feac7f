from droplet.cli import main

raise SystemExit(main())
