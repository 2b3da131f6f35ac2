"""Call procedure guidance: stages and script adherence (QA), the abuse protocol, incident records,
post-call summaries and the supervisor report.

Pure modules over the call's redacted turns and red flags; the policies are data files validated at start-up
(``knowledge_base/policies/``).
"""
