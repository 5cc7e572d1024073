from fuzzgrad.integrations.cli import command

command()
