"""Provisioning: running govcloud's Ansible playbooks (``playbooks/``) through ansible-runner.

The only package that imports ``ansible_runner`` (an import-linter contract keeps it so).
It owns:

* :mod:`.runner` -- :func:`~.runner.run_playbook`: one ansible-runner run in a fresh private
  data directory, every task event turned into a :class:`~.events.TaskEvent` and handed to
  a callback as it happens, and a :class:`~.events.PlaybookResult` at the end;
* :mod:`.events` -- the pure parsing of ansible-runner events and stats (what the CLI
  shows, and how a failure names its host, task and error output);
* :mod:`.inventory` -- reading an inventory's hosts and their variables;
* :mod:`.artifact` -- building the agent wheel that the ``enrol`` playbook installs.

It talks to nobody else: the CLI issues bootstrap tokens and checks hosts through the API
client, and hands this package only files and variables.
"""
