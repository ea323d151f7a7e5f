"""Streamlit pieces shared by several dashboard pages (kept out of pages/, where every .py file is a page)."""
