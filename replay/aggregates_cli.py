"""`replay state | history | diff`: an aggregate as of any instant, its events, what changed."""
