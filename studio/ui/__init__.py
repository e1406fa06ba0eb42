"""The desktop face of the studio: PySide6 and pyqtgraph views over `studio.core`."""
