"""One module per `convoai-worker` subcommand (see `worker.cli.COMMANDS`)."""
