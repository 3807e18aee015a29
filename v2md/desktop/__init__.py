"""The desktop around the daemon: portals, shortcuts and keybindings,
notifications, delivery into the focused app, IBus."""
