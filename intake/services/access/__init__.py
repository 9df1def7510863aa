"""Who may connect, log in and hold what: the admission rules both front-ends share.

Entry points: ``guard.Guard`` (connection slots and the waiting room, scores and blocks,
attacked accounts, bounded hashing), ``login.Authenticator`` (check credentials, audit
the outcome, feed the guard), ``prelogin.PreLoginDigest`` (connections that end before
any login attempt, audited per network and minute), ``budget.Budget`` (what one account
may hold over all its sessions), ``sessions.Sessions`` (live sessions, so a reload can
end those whose login became void).
"""
