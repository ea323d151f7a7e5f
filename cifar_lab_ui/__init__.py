"""Streamlit pieces shared by several dashboard pages (kept out of pages/, where every .py file is a page)."""

import importlib

# Streamlit imports pandas on first use (a table), maybe in one session's thread while another session's thread
# builds a plotly figure; plotly takes pandas from sys.modules without importing it, finds the half-made module and
# fails (no pandas.Series). Every page imports this package first, so pandas is whole before any figure is built.
importlib.import_module("pandas")
