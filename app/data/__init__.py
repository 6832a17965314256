"""Datasets: reading a user's data (sources), making sample data sets (samples) and describing
them for the UI (profile). Nothing here imports TensorFlow; the Streamlit server uses it."""
