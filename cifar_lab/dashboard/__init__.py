"""The dashboard's view-models: what its pages show, as plain data and figures; still no streamlit here."""
