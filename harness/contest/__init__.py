"""contest: contest.toml and its rules. definition (parse, create, teams), gate (who may run or submit on a
round's task now: round windows, team membership, team GPU quotas), rounds (team boards, final selection,
closing and qualifiers), rescore (grade every submission of a task again and report rank changes).
May import: context and every floor below.
"""
