"""The plugin boundary: the cheap records plugins register (specs), the hooks (hookspecs), the
protocols a metric implements, and the host that loads plugins and collects what they register."""
