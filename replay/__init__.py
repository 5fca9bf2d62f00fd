"""`replay`, the operators' command line: an aggregate as of any instant (`state`, `history`,
`diff`), projection rebuilds with verify-and-swap (`rebuild`), projection status
(`projections`) and dead letters (`dlq`). Exit codes and output modes: `replay.app`.
"""
