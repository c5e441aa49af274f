"""The resource kinds: moved to meshd.api.kinds, where the API's discovery is generated from the same table."""

from meshd.api.kinds import *
