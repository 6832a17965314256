"""What the Streamlit pages share: session state, the step bar, and helpers that draw the engine's
answers. The engine (app/) never imports this package."""
