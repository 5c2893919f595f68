"""Real-browser tests: headless Chromium over the DevTools protocol against the running app."""
