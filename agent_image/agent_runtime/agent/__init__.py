"""The agent: a pure step (`step`), the model's view of a conversation (`context`), the
model endpoint (`model`), the conversation store a turn writes (`conversations`), the
driver that runs a turn (`turn`), and who may start one (`admission`)."""
