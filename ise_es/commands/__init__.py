"""The presentation layer: click commands, rich output and the web server.

Stage packages (store, sandbox, tools, llm, simulate, replay, projections, intents) return data
and never import click or rich; the modules here parse options, call them and print. `cli.py`
stays the entry point and registers the groups defined here. Modules import heavy libraries
(matplotlib, openai, docker, numpy, pyarrow, starlette) inside the command that needs them, so
`ise-es --help` and quick commands start fast.
"""
