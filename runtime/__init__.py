"""The runtime layer: composes the messaging layer (streams), the jobs and the read models
into the embedded runtime, the Kafka runtime, the job process and its supervisor, and the
worker roles."""
