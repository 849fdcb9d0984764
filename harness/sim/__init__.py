"""sim: `contest simulate` (a whole contest with baseline teams on simulated time) and its report.
May import: service and every floor below.
"""
