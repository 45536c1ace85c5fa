"""IAM authorisation for the local cloud, as AWS applies it to every API request.

moto evaluates identity policies only against the resource "*" for most services (so a statement
scoped to an ARN never matches) and only when enforcement is switched on for the whole process,
which would also lock out the cloud's own dummy credentials. Here instead:

- policy.py      evaluates policy documents (Action/NotAction, Resource/NotResource, Condition,
                 policy variables), pure, no moto;
- principals.py  tells who signed a request: the account root (the dummy keys the cloud and the
                 harness use, or no signature: unrestricted, as the root user is on AWS), an IAM user
                 (access keys from CreateAccessKey) or an assumed-role session (AssumeRole, and the
                 sessions the Lambda runtime gives each function's execution role);
- resources.py   names the operation, the IAM action and the resource ARNs of a request;
- decision.py    the one decision for a principal, an action and a resource (Deny, boundary, session);
- responses.py   the AccessDenied answer in each service's own error shape;
- simulate.py    iam:SimulatePrincipalPolicy (moto has none), answered with that same decision;
- enforcement.py the switch, the authoriser and the WSGI middleware in front of moto.
"""
