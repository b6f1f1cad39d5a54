import sys

from padtui.cli import main

sys.exit(main())
