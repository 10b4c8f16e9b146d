"""`python -m keras_vae` runs the command line."""

import sys

from keras_vae.cli import main

sys.exit(main())
