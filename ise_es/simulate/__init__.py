"""Stage 2: the role-locked user simulator, the agent loop and the session recorder."""
