package appinterface

import "strings"

// gpgKey stands in for a user's public_gpg_key: base64 of a binary key, one
// long line, as app-interface stores it.
var gpgKey = "mQINBGQ" + strings.Repeat("Zx9Kp2Lw4Rt7Vb1Nc8Hj3Df6Sa0Qe5Wu/Yi+Mo", 40) + "AAE="

// userFile is a realistic app-interface user file (/access/user-1.yml):
// comments between roles, blank lines, a trailing comment on an item, quoted
// and flow-form refs, and a long one-line public_gpg_key after the roles.
var userFile = `---
$schema: /access/user-1.yml

labels: {}

name: Jane Doe
org_username: jdoe
github_username: janedoe
quay_username: jdoe
tag_on_merge_requests: false

# Roles are granted per team; keep them grouped.
roles:
# OpenShift.io
- $ref: /teams/devtools/roles/osio-dev.yml
- $ref: /teams/devtools/roles/osio.yml # production console

# App-SRE
- $ref: /teams/app-sre/roles/app-sre-readonly.yml
- {$ref: "/teams/devtools/roles/osio-data.yml"}
- $ref: '/teams/insights/roles/viewer.yml'
# end of roles

public_gpg_key: ` + gpgKey + `
`

// The refs of userFile's roles, in order.
const (
	refOsioDev  = "/teams/devtools/roles/osio-dev.yml"
	refOsio     = "/teams/devtools/roles/osio.yml"
	refReadonly = "/teams/app-sre/roles/app-sre-readonly.yml"
	refData     = "/teams/devtools/roles/osio-data.yml"
	refViewer   = "/teams/insights/roles/viewer.yml"
)

var userRefs = []string{refOsioDev, refOsio, refReadonly, refData, refViewer}

// accountFile is a realistic app-interface account file (/aws/account-1.yml)
// with sso: false and two resetPasswords entries (one in block form, one in
// flow form), followed by a comment and more keys.
const accountFile = `---
$schema: /aws/account-1.yml

labels: {}

name: osio
description: OpenShift.io production account
consoleUrl: https://386414299200.signin.aws.amazon.com/console
uid: '386414299200'
resourcesDefaultRegion: us-east-1
supportedDeploymentRegions:
- us-east-1
providerVersion: 5.70.0
accountOwners:
- name: DevTools SRE
  email: devtools-sre@example.com
automationToken:
  path: app-sre/creds/terraform/osio/config
  field: all
sso: false

# Console password resets, done by terraform-users.
resetPasswords:
- user:
    $ref: /teams/devtools/users/asmith.yml
  requestId: 2023-01-17-asmith
- user: {$ref: /teams/devtools/users/bjones.yml}
  requestId: osio-bot-r17
# keep this list short: remove entries once done

deleteKeys:
- AKIAEXAMPLEKEY000001
premiumSupport: false
`

// accountFileNoResets is an account file that has never had a reset.
const accountFileNoResets = `---
$schema: /aws/account-1.yml

labels: {}

name: osio-dev
description: OpenShift.io development account
consoleUrl: https://619539278362.signin.aws.amazon.com/console
uid: '619539278362'
resourcesDefaultRegion: us-east-1
supportedDeploymentRegions:
  - us-east-1
  - us-east-2
automationToken:
  path: app-sre/creds/terraform/osio-dev/config
  field: all
sso: false
premiumSupport: false
`
