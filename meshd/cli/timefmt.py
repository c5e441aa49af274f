"""kubectl's time formats: moved to meshd.api.timefmt, where the API's Table output uses them too."""

from meshd.api.timefmt import *
