"""``k10fleet check``: validate a rendered tree offline, as CI would."""

DEFAULT_KUBERNETES_VERSION = "1.32.0"
