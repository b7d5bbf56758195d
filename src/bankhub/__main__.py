from bankhub.cli import main

main()
