"""The product: every stage of a model's journey as plain functions. Never imports Qt."""
