from . import onpipeline_mailbox_test_email
from . import mail_compose_message
