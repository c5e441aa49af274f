"""`meshd get` tables: moved to meshd.api.columns, where the API's Table output computes the same columns."""

from meshd.api.columns import *
