"""`python -m serving.client`: the command line of serving/client/command_line.py."""

import sys

from serving.client.command_line import main

sys.exit(main())
