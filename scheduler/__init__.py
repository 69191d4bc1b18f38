"""The scheduler only ticks: every job reads what is due from database columns and writes rows
(inbox events, outbox messages). Nothing important lives in a timer, so a restart or a second
instance changes nothing; jobs are idempotent by the unique keys of the rows they write."""
