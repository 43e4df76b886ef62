"""The typer app: parse -> call the library -> render. No boto3 here."""
