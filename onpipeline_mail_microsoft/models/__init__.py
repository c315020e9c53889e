from . import onpipeline_mailbox
