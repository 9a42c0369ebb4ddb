"""The napari plugin (npe2 manifest ``napari.yaml``): a reader for subcell's outputs, widgets whose forms are
generated from subcell's pydantic configs, and a synthetic sample field. Install with ``pip install
"subcell[napari]"``; nothing here is imported unless napari loads the plugin."""
