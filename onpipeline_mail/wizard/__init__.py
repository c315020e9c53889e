from . import onpipeline_mailbox_test_email
