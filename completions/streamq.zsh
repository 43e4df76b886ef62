#compdef streamq

_streamq_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _STREAMQ_COMPLETE=complete_zsh streamq)
}

compdef _streamq_completion streamq
