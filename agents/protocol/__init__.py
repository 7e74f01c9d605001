"""Versioned messages between the control plane and host agents.

The control plane imports these models to serve the agent endpoints; the agent imports them
to call those endpoints. Breaking changes get a new module (v2) served side by side.
"""
