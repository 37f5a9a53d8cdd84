"""The domain: what a request, a job, a ticket, a view and an event are; the errors and their
codes; pure rules (polling, prompt tokens, which images a job keeps). It imports nothing of the
gateway's but itself."""
