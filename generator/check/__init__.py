"""``k10fleet check``: validate a rendered tree offline, as CI would."""
