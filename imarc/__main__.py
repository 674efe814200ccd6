from imarc.cli import main

main()
