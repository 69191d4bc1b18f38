"""Training (培训): courses loaded from files, the courses each person is to take (packs per
post, assignments, catch-up courses), their progress through lessons and quizzes, the practical
checks after a pass, and the hours ledger that the person's file and the pre-work check read."""
