"""Desktop-only code of the plugin (menu actions, dialogs); never imported by qgis_process."""
