"""Background processes of the feedback loop: the event transports (Kafka, outbox, in-process
queue), the feedback consumer and the outbox relay.
"""
