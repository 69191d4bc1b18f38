"""People (一人一档): who may do which work. Each person's profile (post, hire date, contractor),
certificates, training records, the pre-work checks run on them, contractors and their admission,
and the hash-chained records that make each person's history tamper-evident."""
