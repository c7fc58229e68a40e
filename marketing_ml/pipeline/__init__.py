"""The pipeline across domains: the demo's steps as jobs, and the daily run of every daily asset."""
