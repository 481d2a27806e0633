"""The simulator's dialplan: config parsing, substitution, applications and dialling."""
