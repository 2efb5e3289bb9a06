import sys

from campaign_autoscaler.cli import main

sys.exit(main())
