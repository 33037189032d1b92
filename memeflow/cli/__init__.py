"""The `memeflow` command (`main.py`), the supervisor that serves the Flow (`serve.py`),
terminal previews and the demo."""
